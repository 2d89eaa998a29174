use Net::LDAP;
my $ldap = Net::LDAP->new("127.0.0.1", port => $ARGV[0], scheme => "ldaps", timeout => 5);
print( $ldap ? "LDAPS connected (handshake ok)\n" : "LDAPS DOWN $@\n");
