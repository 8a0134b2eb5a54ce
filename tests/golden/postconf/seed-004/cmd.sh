# Seed 004_cd03462396d1faac.txt (virtual mailboxes with Dovecot, pipe service): main.cf as a reader of the guide ends up with it
# (tests/seeds/004/main.cf), master.cf = the guide's (tests/seeds/004/master.cf).

run postconf -c . -n

# every parameter set in main.cf, in file order
run postconf -c . mydomain
run postconf -c . myhostname
run postconf -c . myorigin
run postconf -c . mydestination
run postconf -c . mynetworks
run postconf -c . inet_interfaces
run postconf -c . mailbox_size_limit
run postconf -c . home_mailbox
run postconf -c . disable_vrfy_command
run postconf -c . alias_maps
run postconf -c . alias_database
run postconf -c . local_recipient_maps
run postconf -c . virtual_mailbox_domains
run postconf -c . virtual_mailbox_maps
run postconf -c . virtual_alias_maps
run postconf -c . virtual_uid_maps
run postconf -c . virtual_gid_maps
run postconf -c . virtual_minimum_uid
run postconf -c . mailbox_command
run postconf -c . smtpd_tls_session_cache_database
run postconf -c . smtpd_tls_protocols
run postconf -c . smtpd_tls_eecdh_grade
run postconf -c . smtp_tls_session_cache_database
run postconf -c . smtpd_helo_restrictions
run postconf -c . smtpd_client_restrictions
run postconf -c . smtpd_sender_restrictions
run postconf -c . smtpd_recipient_restrictions
run postconf -c . smtpd_data_restrictions

# parameters that appear only commented out in main.cf
run postconf -c . dovecot_destination_concurrency_limit

# values only
run postconf -c . -h mydomain
run postconf -c . -h smtpd_recipient_restrictions
run postconf -c . -h virtual_mailbox_domains

# expanded values
run postconf -c . -x myhostname
run postconf -c . -x mydestination
run postconf -c . -x smtpd_tls_session_cache_database
run postconf -c . -x local_recipient_maps
run postconf -c . -h -x myhostname

# master.cf
run postconf -c . -M
run postconf -c . -Mf
run postconf -c . -F
run postconf -c . -P

# service-derived parameters of the guide's dovecot pipe service
run postconf -c . -d dovecot_destination_recipient_limit dovecot_destination_concurrency_limit dovecot_time_limit
run postconf -c . -x dovecot_destination_recipient_limit
run postconf -c . -F dovecot/unix/command
run postconf -c . -Mf dovecot/unix submission/inet
