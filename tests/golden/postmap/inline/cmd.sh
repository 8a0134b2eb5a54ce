# inline:{key=value, ...}: keys are folded unless -f; whitespace and commas
# separate entries; { key = value with spaces, or commas } protects a value;
# a repeated key keeps the last value.
sorted() { "$@" >"$RUN_TMP/sorted"; st=$?; sort "$RUN_TMP/sorted"; return $st; }
run postmap -c . -q a 'inline:{a=1, B=2}'
run postmap -c . -q b 'inline:{a=1, B=2}'
run postmap -c . -q A 'inline:{a=1, B=2}'
run postmap -c . -f -q b 'inline:{a=1, B=2}'
run postmap -c . -f -q B 'inline:{a=1, B=2}'
run postmap -c . -q c 'inline:{a=1, B=2}'
run postmap -c . -q a 'inline:{ {a = x y, z}, b=2 }'
run postmap -c . -q a 'inline:{a=1 b=2}'
run postmap -c . -q a 'inline:{a=1,a=2}'
run postmap -c . -q a 'inline:{a=1;b=2}'
run sorted postmap -c . -s 'inline:{a=1, B=2, { c = three words }}'
run postmap -c . -q x 'inline:{}'
run postmap -c . -q x 'inline:{a}'
run postmap -c . -q x 'inline:a=1'
run postmap -c . -q x 'inline:{a=1'
run postmap -c . -q x 'inline:{ a = x y }'
run postmap -c . -q 'a b' 'inline:{ {a b=x} }'
