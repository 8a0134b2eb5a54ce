# Without master.cf: a warning where master.cf is optional, fatal for -M/-F/-P;
# no service-derived parameters exist.
run postconf -c . -n
run postconf -c . myorigin
run postconf -c . -d mail_name
run postconf -c . -d smtp_destination_concurrency_limit local_destination_concurrency_limit
run postconf -c . -M
run postconf -c . -F
run postconf -c . -P
