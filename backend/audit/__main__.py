from backend.audit.cli import main

raise SystemExit(main())
