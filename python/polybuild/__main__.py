from polybuild.cli.main import main

raise SystemExit(main())
