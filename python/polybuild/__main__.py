from polybuild.cli import main

raise SystemExit(main())
