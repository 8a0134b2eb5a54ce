# static:value returns the value for every key; static:{text with spaces};
# empty static:{} is an empty result (warning); -s is unsupported.
run postmap -c . -q anything static:relay.example.com
run postmap -c . -q anything 'static:{text with spaces}'
run postmap -c . -q anything 'static:{ padded text }'
run postmap -c . -q anything 'static:{}'
run postmap -c . -q anything 'static:{unclosed'
run postmap -c . -q anything static:
# A blank input line is looked up as the empty key (static matches it).
run_in keys postmap -c . -q - static:Value
run postmap -c . -s static:value
