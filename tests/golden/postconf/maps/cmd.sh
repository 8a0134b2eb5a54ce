# Lookup table types, SASL server/client types, mailbox lock types
# (Debian's postfix with postfix-lmdb/-pcre/-cdb/-mysql/-pgsql installed).
run postconf -c . -m
run postconf -c . -a
run postconf -c . -A
run postconf -c . -l
run postconf -c . -m -a
