#!/bin/sh
# The compose example's OpenLDAP. On the first start (no configuration yet) it builds a
# bare server offline (cn=config with the system schemas, an mdb database with its rootdn,
# the base entry), then applies what `scim-ldap directory-ldif` wrote into $SLAPD_PREPARED_DIR
# (schema, modules, config, database, overlays, data: docs/directory.md) through a slapd
# listening on ldapi:// only; then it runs slapd in the foreground.
# The admin (rootdn) password comes from a file, never from the environment.
set -eu

config_dir=${SLAPD_CONFIG_DIR:-/etc/ldap/slapd.d}
data_dir=${SLAPD_DATA_DIR:-/var/lib/ldap}
run_dir=${SLAPD_RUN_DIR:-/run/slapd}
prepared_dir=${SLAPD_PREPARED_DIR:-/prepared}
schema_dir=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
module_dir=${SLAPD_MODULE_DIR:-/usr/lib/ldap}
urls=${SLAPD_URLS:-ldap:/// ldapi:///}
user=${SLAPD_USER-openldap}
base_dn=${LDAP_BASE_DN:-dc=example,dc=org}
organization=${LDAP_ORGANIZATION:-Example}
admin_dn=${LDAP_ADMIN_DN:-cn=admin,$base_dn}
password_file=${LDAP_ADMIN_PASSWORD_FILE:-/run/secrets/ldap_admin_password}
parts="schema modules config database overlays data"

case $base_dn in
    dc=*) base_dc=${base_dn%%,*}; base_dc=${base_dc#dc=} ;;
    *) echo "LDAP_BASE_DN must start with dc= (got $base_dn)" >&2; exit 1 ;;
esac

mkdir -p "$config_dir" "$data_dir" "$run_dir"

wait_ready() {
    tries=0
    until ldapsearch -Q -Y EXTERNAL -H "$1" -b cn=config -s base -LLL dn >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 100 ]; then
            echo "slapd did not answer on $1" >&2
            return 1
        fi
        sleep 0.1
    done
}

stop_slapd() {
    pid=$(cat "$run_dir/slapd.pid")
    kill "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
    done
}

if [ ! -e "$config_dir/cn=config.ldif" ]; then
    if [ ! -s "$password_file" ]; then
        echo "the admin password file $password_file is missing or empty" >&2
        exit 1
    fi
    for part in $parts; do
        if [ ! -s "$prepared_dir/$part.ldif" ]; then
            echo "$prepared_dir/$part.ldif is missing: the prepare service writes it" >&2
            exit 1
        fi
    done
    work=$(mktemp -d)
    # A first start that fails leaves nothing behind, so the next one starts over.
    trap 'if [ -s "$run_dir/slapd.pid" ]; then stop_slapd; fi
          rm -rf "$work" "$config_dir"/* "$data_dir"/*' EXIT
    # The password without a trailing newline, as scim-ldap reads it from its own file.
    (umask 077 && printf '%s' "$(cat "$password_file")" > "$work/password")
    hash=$(slappasswd -h '{SSHA}' -T "$work/password")
    peercred="gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth"
    {
        cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $run_dir/slapd.pid
olcArgsFile: $run_dir/slapd.args

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $module_dir
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

EOF
        for schema in core cosine inetorgperson nis; do
            cat "$schema_dir/$schema.ldif"
            printf '\n'
        done
        cat <<EOF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact="$peercred" manage by dn.exact="$admin_dn" read by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $data_dir
olcDbMaxSize: 1073741824
olcSuffix: $base_dn
olcRootDN: $admin_dn
olcRootPW: $hash
olcLimits: dn.exact="$admin_dn" size=unlimited time=unlimited
olcLastMod: TRUE
EOF
    } > "$work/config.ldif"
    cat > "$work/base.ldif" <<EOF
dn: $base_dn
objectClass: top
objectClass: dcObject
objectClass: organization
dc: $base_dc
o: $organization
EOF
    slapadd -q -n0 -F "$config_dir" -l "$work/config.ldif"
    slapadd -q -n1 -F "$config_dir" -l "$work/base.ldif"

    socket=$(printf '%s' "$run_dir/ldapi" | sed -e 's|%|%25|g' -e 's|/|%2F|g')
    ldapi="ldapi://$socket"
    slapd -h "$ldapi" -F "$config_dir"
    wait_ready "$ldapi"
    ldapadd -Q -Y EXTERNAL -H "$ldapi" -f "$prepared_dir/schema.ldif" >/dev/null
    ldapadd -Q -Y EXTERNAL -H "$ldapi" -f "$prepared_dir/modules.ldif" >/dev/null
    ldapmodify -Q -Y EXTERNAL -H "$ldapi" -f "$prepared_dir/config.ldif" >/dev/null
    ldapmodify -Q -Y EXTERNAL -H "$ldapi" -f "$prepared_dir/database.ldif" >/dev/null
    ldapadd -Q -Y EXTERNAL -H "$ldapi" -f "$prepared_dir/overlays.ldif" >/dev/null
    ldapadd -x -H "$ldapi" -D "$admin_dn" -y "$work/password" \
        -f "$prepared_dir/data.ldif" >/dev/null
    stop_slapd
    rm -rf "$work"
    trap - EXIT
    echo "created $base_dn with admin $admin_dn, prepared by scim-ldap directory-ldif" >&2
fi

if [ "$(id -u)" = 0 ] && [ -n "$user" ]; then
    chown -R "$user:$user" "$config_dir" "$data_dir" "$run_dir"
    exec slapd -d "${SLAPD_DEBUG:-0}" -h "$urls" -F "$config_dir" -u "$user" -g "$user"
fi
exec slapd -d "${SLAPD_DEBUG:-0}" -h "$urls" -F "$config_dir"
