from bandit_router.cli.main import main

raise SystemExit(main())
