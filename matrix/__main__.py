from matrix import bytecode

bytecode.keep_in_cache()  # before the imports it speeds up

from matrix.cli import main  # noqa: E402

raise SystemExit(main())
