# cidr: IPv4/IPv6 networks and hosts, [bracketed] IPv6, if/endif, !negation,
# first match wins, misses, keys that are not plain IP addresses, -s.
run postmap -c . -q 10.0.0.1 cidr:table
run postmap -c . -q 10.9.9.9 cidr:table
run postmap -c . -q 2001:0db8:0000::1 cidr:table
run postmap -c . -q 2001:DB8:1::1 cidr:table
run postmap -c . -q 2001:db9::1 cidr:table
run postmap -c . -q 172.16.5.1 cidr:table
run postmap -c . -q 192.0.2.1 cidr:table
run postmap -c . -q ::2 cidr:table
run postmap -c . -q ::ffff:192.0.2.1 cidr:table
run postmap -c . -q '[10.0.0.1]' cidr:table
run postmap -c . -q not-an-ip cidr:table
run postmap -c . -q 10.0.0.256 cidr:table
run postmap -c . -q 010.000.000.001 cidr:table
run_in keys postmap -c . -q - cidr:table
run postmap -c . -s cidr:table
