from artifact_operator.cli.main import main

raise SystemExit(main())
