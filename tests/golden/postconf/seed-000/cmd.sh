# Seed 000_cac9847d8ddc01a8.txt (kernel-panic.it OpenBSD guide, virtual mailbox hosting): main.cf as a reader of the guide ends up with it
# (tests/seeds/000/main.cf), master.cf = Debian's default.

run postconf -c . -n

# every parameter set in main.cf, in file order
run postconf -c . command_directory
run postconf -c . daemon_directory
run postconf -c . queue_directory
run postconf -c . sendmail_path
run postconf -c . newaliases_path
run postconf -c . mailq_path
run postconf -c . html_directory
run postconf -c . manpage_directory
run postconf -c . readme_directory
run postconf -c . mail_owner
run postconf -c . setgid_group
run postconf -c . myhostname
run postconf -c . mydomain
run postconf -c . myorigin
run postconf -c . inet_interfaces
run postconf -c . proxy_interfaces
run postconf -c . mydestination
run postconf -c . mynetworks
run postconf -c . relay_domains
run postconf -c . relayhost
run postconf -c . alias_maps
run postconf -c . alias_database
run postconf -c . smtpd_banner
run postconf -c . virtual_mailbox_domains
run postconf -c . virtual_mailbox_base
run postconf -c . virtual_mailbox_maps
run postconf -c . virtual_minimum_uid
run postconf -c . virtual_uid_maps
run postconf -c . virtual_gid_maps
run postconf -c . virtual_alias_maps

# values only
run postconf -c . -h mynetworks
run postconf -c . -h relayhost
run postconf -c . -h virtual_mailbox_base

# expanded values
run postconf -c . -x mydestination
run postconf -c . -x relay_domains
run postconf -c . -x smtpd_banner
run postconf -c . -x myorigin
run postconf -c . -h -x mydestination

# master.cf
run postconf -c . -M
run postconf -c . -F
run postconf -c . -P
