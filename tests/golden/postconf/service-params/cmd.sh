# Rostfix's own rostfix_ parameters (DESIGN.md section 1) are left out of the counts.
# Service-derived parameters: for each master.cf service whose command is
# local, error, virtual, smtp, lmtp (16 names), pipe (17: + _time_limit) or
# spawn (1: _time_limit), postconf knows <service>_<suffix> with a default of
# $<default parameter>.
run postconf -c . -d dovecot_destination_recipient_limit
run postconf -c . dovecot_destination_recipient_limit
run postconf -c . -x dovecot_destination_recipient_limit
run postconf -c . -d dovecot_destination_concurrency_limit dovecot_time_limit policy_time_limit
run postconf -c . -d policy_destination_concurrency_limit fullpath_time_limit discard_destination_concurrency_limit commented_time_limit
run postconf -c . -d mysmtp_destination_concurrency_limit local_destination_concurrency_limit local_destination_recipient_limit
run postconf -c . -n
run postconf -c . -C service -H

# Everything -d gains from these services (process_id differs between runs).
cp -p master-empty.cf master.cf
postconf -c . -d 2>/dev/null | grep -v '^process_id =' >defaults-empty.txt
cp -p master-services.cf master.cf
postconf -c . -d 2>/dev/null | grep -v '^process_id =' >defaults-services.txt
run comm -13 defaults-empty.txt defaults-services.txt
run comm -23 defaults-empty.txt defaults-services.txt

# The same main.cf with an empty master.cf: no dovecot service.
cp -p master-empty.cf master.cf
run postconf -c . -d dovecot_destination_recipient_limit
run postconf -c . dovecot_destination_recipient_limit
run postconf -c . -n
run postconf -c . -d local_destination_concurrency_limit local_destination_recipient_limit

# Number of parameters: empty master.cf, Debian's, the one above.
run sh -c 'postconf -c . -d | grep -v ^rostfix_ | wc -l'
cp -p master-debian.cf master.cf
run sh -c 'postconf -c . -d | grep -v ^rostfix_ | wc -l'
cp -p master-services.cf master.cf
run sh -c 'postconf -c . -d | grep -v ^rostfix_ | wc -l'
