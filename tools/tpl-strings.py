#!/usr/bin/env python3
"""Prints the {{_ text}} strings of the templates as C gettext calls, so that
xgettext can put them in the catalog (see tools/update-po).

usage: tpl-strings.py TEMPLATE..."""
import re
import sys

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            for text in re.findall(r"\{\{_\s+(.*?)\}\}", line):
                escaped = text.replace("\\", "\\\\").replace('"', '\\"')
                print('#line %d "%s"' % (lineno, path))
                print('_("%s");' % escaped)
