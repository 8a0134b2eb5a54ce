# Lookup table types, SASL server/client types, mailbox lock types
# (Debian's postfix with postfix-lmdb/-pcre/-cdb/-mysql/-pgsql installed).
# Rostfix lists the types it implements (dbm: too; mysql:, pgsql: ... come
# with a later issue), so the comparison keeps the types both have.
common='^(btree|cdb|cidr|fail|hash|inline|lmdb|pcre|pipemap|proxy|regexp|static|texthash|unionmap|unix)$'
common_types() { "$@" >"$RUN_TMP/types"; st=$?; grep -E "$common" "$RUN_TMP/types"; return $st; }
run common_types postconf -c . -m
run postconf -c . -a
run postconf -c . -A
run postconf -c . -l
run postconf -c . -m -a
