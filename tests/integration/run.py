#!/usr/bin/python3
"""Runs every tests/integration/test_*.py (verbosity 2); exits non-zero on
any failure, error or unexpected success.

    /usr/bin/python3 tests/integration/run.py [-k PATTERN] [test_module ...]

Environment: see kw.py (KEYWARDEN, KW_WRAPPER, KW_TEST_DATABASE, ...).
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    sys.path.insert(0, HERE)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.dont_write_bytecode = True
    patterns = []
    names = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "-k" and args:
            patterns.append(args.pop(0))
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            names.append(a[:-3] if a.endswith(".py") else a)
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = ["*%s*" % p if "*" not in p else p for p in patterns]
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    import kw
    print("keywarden binary: %s%s" % (kw.BINARY, "  (wrapper: %s)" % " ".join(kw.WRAPPER)
                                      if kw.WRAPPER else ""), flush=True)
    if not os.access(kw.BINARY, os.X_OK):
        print("error: %s is not an executable; build first or set KEYWARDEN" % kw.BINARY,
              file=sys.stderr)
        return 2
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
