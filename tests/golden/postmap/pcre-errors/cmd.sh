# pcre syntax problems: warnings with map name, file and line (the PCRE2
# compile error text with its offset), repeated on every open.
run postmap -c . -q ok pcre:table
run postmap -c . -q x1 pcre:table
run postmap -c . -q noval pcre:table
run postmap -c . -q missing pcre:table
