# pcre: $N and ${N}, $$, if/endif, other delimiters, lookahead, lookbehind,
# named groups, an unset optional group (empty), !/pattern/ negation,
# default case-insensitive matching, a miss, -q -, and -s (unsupported).
run postmap -c . -q user+abc@example.com pcre:table
run postmap -c . -q USER+ABC@EXAMPLE.COM pcre:table
run postmap -c . -q braces-mid pcre:table
run postmap -c . -q foobaz pcre:table
run postmap -c . -q foobar pcre:table
run postmap -c . -q prefix pcre:table
run postmap -c . -q other.com pcre:table
run_in keys postmap -c . -q - pcre:table
run postmap -c . -s pcre:table
