# Seed 003_18d9c4052cad8151.txt (Andy Barclay home deployment, typos and duplicates): main.cf as a reader of the guide ends up with it
# (tests/seeds/003/main.cf), master.cf = Debian's default.

run postconf -c . -n

# every parameter set in main.cf, in file order
run postconf -c . allow_percent_hack
run postconf -c . append_at_myorigin
run postconf -c . append_dot_mydomain
run postconf -c . command_directory
run postconf -c . config_directory
run postconf -c . daemon_directory
run postconf -c . debug_peer_level
run postconf -c . empty_address_recipient
run postconf -c . mail_owner
run postconf -c . mailq_path
run postconf -c . manpage_directory
run postconf -c . masquerade_classes
run postconf -c . masquerade_domains
run postconf -c . masquerade_exceptions
run postconf -c . mydestination
run postconf -c . myhostname
run postconf -c . newaliases_path
run postconf -c . queue_directory
run postconf -c . readme_directory
run postconf -c . relay_domains
run postconf -c . sample_directory
run postconf -c . sendmail_path
run postconf -c . setgid_group
run postconf -c . smtp_sasl_auth_enable
run postconf -c . smtp_sasl_password_maps
run postconf -c . smtpd_recipient_restrictions
run postconf -c . smtpd_sasl_auth_enable
run postconf -c . swap_bangpath
run postconf -c . unknown_local_recipient_reject_code
run postconf -c . smtpd_use_tls
run postconf -c . smtpd_tls_key_file
run postconf -c . smtpd_tls_cert_file
run postconf -c . home_mailbox
run postconf -c . smtpd_client_restrictions
run postconf -c . virtual_alias_maps
run postconf -c . transport_maps
run postconf -c . smtp_sasl_security_options
run postconf -c . smtpd_helo_required
run postconf -c . mynetworks

# parameters that appear only commented out in main.cf
run postconf -c . smtpd_sasl_local_domain
run postconf -c . smtpd_tls_CAfile

# values only
run postconf -c . -h myhostname
run postconf -c . -h smtpd_recipient_restrictions
run postconf -c . -h smtp_sasl_auth_enable
run postconf -c . -h smtp_sasl_security_options

# expanded values
run postconf -c . -x relay_domains
run postconf -c . -x smtpd_recipient_restrictions
run postconf -c . -h -x relay_domains

# master.cf
run postconf -c . -M
run postconf -c . -F
run postconf -c . -P
