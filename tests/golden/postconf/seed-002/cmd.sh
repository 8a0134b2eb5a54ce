# Seed 002_597184e300842b0d.txt (ArchWiki Postfix, full master.cf): main.cf as a reader of the guide ends up with it
# (tests/seeds/002/main.cf), master.cf = the guide's (tests/seeds/002/master.cf).

run postconf -c . -n

# every parameter set in main.cf, in file order
run postconf -c . myhostname
run postconf -c . mydomain
run postconf -c . mydestination
run postconf -c . home_mailbox
run postconf -c . allow_mail_to_commands
run postconf -c . transport_maps
run postconf -c . smtp_sasl_auth_enable
run postconf -c . smtp_sasl_security_options
run postconf -c . smtp_sasl_password_maps
run postconf -c . smtp_tls_security_level
run postconf -c . smtp_tls_CAfile
run postconf -c . smtp_generic_maps
run postconf -c . myorigin

# values only
run postconf -c . -h mydestination
run postconf -c . -h smtp_tls_security_level

# expanded values
run postconf -c . -x mydestination
run postconf -c . -x myorigin
run postconf -c . -h -x mydestination

# master.cf
run postconf -c . -M
run postconf -c . -Mf
run postconf -c . -F
run postconf -c . -P
