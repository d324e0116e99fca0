#!/usr/bin/env python3
"""Writes a C file holding the given files as a table of byte arrays.

usage: embed.py OUTPUT.c SYMBOL BASEDIR FILE...

The table is `const struct embedded_file SYMBOL[]`, ended by a NULL name;
each name is the file's path relative to BASEDIR."""
import os
import sys


def main():
    out, symbol, base = sys.argv[1:4]
    files = sorted(sys.argv[4:])
    with open(out, "w", encoding="ascii") as f:
        f.write('#include "util/embedded.h"\n\n')
        for i, path in enumerate(files):
            with open(path, "rb") as src:
                data = src.read()
            f.write("static const unsigned char d%d[] = {" % i)
            for j, byte in enumerate(data):
                if j % 16 == 0:
                    f.write("\n\t")
                f.write("%d," % byte)
            f.write("0\n};\n")
        f.write("\nconst struct embedded_file %s[] = {\n" % symbol)
        for i, path in enumerate(files):
            name = os.path.relpath(path, base).replace(os.sep, "/")
            size = os.path.getsize(path)
            f.write('\t{ "%s", d%d, %d },\n' % (name, i, size))
        f.write("\t{ 0, 0, 0 }\n};\n")


if __name__ == "__main__":
    main()
