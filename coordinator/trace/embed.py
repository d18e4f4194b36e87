"""Embed a text file in C: embed.py INPUT OUTPUT NAME writes OUTPUT with
`const char NAME[]` holding INPUT's bytes and a NUL (an array of numbers:
C11 compilers need not take string literals this long)."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, 'rb').read() + b'\0'
with open(out, 'w') as f:
    f.write('/* Generated from %s by embed.py: do not edit. */\n'
            % src.split('/')[-1])
    f.write('const char %s[%d] = {\n' % (name, len(data)))
    for k in range(0, len(data), 16):
        f.write('    ' + ', '.join('%d' % b for b in data[k:k + 16]) + ',\n')
    f.write('};\n')
