from bandit_router.cli import main

raise SystemExit(main())
