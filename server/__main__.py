from pgbell.ops.cli import main

raise SystemExit(main())
