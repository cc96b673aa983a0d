#!/bin/sh
# The compose example's OpenLDAP. On the first start (no configuration yet) it builds
# cn=config and the base entries offline with slapadd; then it runs slapd in the foreground.
# The admin (rootdn) password comes from a file, never from the environment.
set -eu

config_dir=${SLAPD_CONFIG_DIR:-/etc/ldap/slapd.d}
data_dir=${SLAPD_DATA_DIR:-/var/lib/ldap}
run_dir=${SLAPD_RUN_DIR:-/run/slapd}
template_dir=${SLAPD_TEMPLATE_DIR:-/usr/local/share/openldap}
schema_dir=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
module_dir=${SLAPD_MODULE_DIR:-/usr/lib/ldap}
urls=${SLAPD_URLS:-ldap:/// ldapi:///}
user=${SLAPD_USER-openldap}
base_dn=${LDAP_BASE_DN:-dc=example,dc=org}
organization=${LDAP_ORGANIZATION:-Example}
admin_dn=${LDAP_ADMIN_DN:-cn=admin,$base_dn}
password_file=${LDAP_ADMIN_PASSWORD_FILE:-/run/secrets/ldap_admin_password}

case $base_dn in
    dc=*) base_dc=${base_dn%%,*}; base_dc=${base_dc#dc=} ;;
    *) echo "LDAP_BASE_DN must start with dc= (got $base_dn)" >&2; exit 1 ;;
esac

mkdir -p "$config_dir" "$data_dir" "$run_dir"

if [ ! -e "$config_dir/cn=config.ldif" ]; then
    if [ ! -s "$password_file" ]; then
        echo "the admin password file $password_file is missing or empty" >&2
        exit 1
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # The password without a trailing newline, as scim-ldap reads it from its own file.
    (umask 077 && printf '%s' "$(cat "$password_file")" > "$work/password")
    hash=$(slappasswd -h '{SSHA}' -T "$work/password")
    fill() {
        sed -e "s|@BASE_DN@|$base_dn|g" -e "s|@BASE_DC@|$base_dc|g" \
            -e "s|@ORGANIZATION@|$organization|g" -e "s|@ADMIN_DN@|$admin_dn|g" \
            -e "s|@ADMIN_PW_HASH@|$hash|g" -e "s|@DATA_DIR@|$data_dir|g" \
            -e "s|@RUN_DIR@|$run_dir|g" -e "s|@MODULE_DIR@|$module_dir|g" "$1"
    }
    for schema in "$schema_dir/core.ldif" "$schema_dir/cosine.ldif" \
        "$schema_dir/inetorgperson.ldif" "$schema_dir/nis.ldif" \
        "$template_dir/openssh-lpk.ldif" "$template_dir/scim-ldap.ldif"; do
        cat "$schema" >> "$work/schemas.ldif"
        printf '\n' >> "$work/schemas.ldif"
    done
    fill "$template_dir/config.ldif" | sed -e "/^# SCHEMAS\$/r $work/schemas.ldif" \
        > "$work/config.ldif"
    fill "$template_dir/base.ldif" > "$work/base.ldif"
    slapadd -q -n0 -F "$config_dir" -l "$work/config.ldif"
    slapadd -q -n1 -F "$config_dir" -l "$work/base.ldif"
    rm -rf "$work"
    trap - EXIT
    echo "created $base_dn with admin $admin_dn" >&2
fi

if [ "$(id -u)" = 0 ] && [ -n "$user" ]; then
    chown -R "$user:$user" "$config_dir" "$data_dir" "$run_dir"
    exec slapd -d "${SLAPD_DEBUG:-0}" -h "$urls" -F "$config_dir" -u "$user" -g "$user"
fi
exec slapd -d "${SLAPD_DEBUG:-0}" -h "$urls" -F "$config_dir"
