# fail: always fails (exit 1, fatal); pipemap: output of one lookup is the
# key of the next; unionmap: comma-joined results of all tables that match.
run postmap -c . -q x fail:x
run postmap -c . -q x fail:
run postmap -c . -s fail:x
run postmap -c . -q a 'pipemap:{inline:{a=b}, inline:{b=c}}'
run postmap -c . -q A 'pipemap:{inline:{a=b}, inline:{b=c}}'
run postmap -c . -q b 'pipemap:{inline:{a=b}, inline:{b=c}}'
run postmap -c . -q a 'pipemap:{inline:{a=1}}'
run postmap -c . -q a 'pipemap:inline:{a=1}'
run postmap -c . -q a 'unionmap:{inline:{a=1}, inline:{a=2}}'
run postmap -c . -q a 'unionmap:{inline:{a=1}, inline:{b=2}}'
run postmap -c . -q c 'unionmap:{inline:{a=1}, inline:{a=2}}'
run postmap -c . -q a 'unionmap:{}'
run postmap -c . -q a 'unionmap:{inline:{a=1}, fail:x}'
run postmap -c . -q a 'pipemap:{inline:{a=b}, fail:x}'
run postmap -c . -s 'unionmap:{inline:{a=1}, inline:{a=2}}'
# proxy: with no table fails at once; a real proxy:TYPE:NAME lookup needs a
# running proxymap service (see NOTES.md: 11 connects, 10 s apart, so it is
# not recorded here).
run postmap -c . -q x proxy:
