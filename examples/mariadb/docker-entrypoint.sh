#!/bin/bash
# Like the official mariadb image's entrypoint, for the variables the labs use.
set -eo pipefail

log() { echo "$(date -u '+%F %T') 0 [Note] [Entrypoint]: $*"; }
die() { echo "$(date -u '+%F %T') 0 [ERROR] [Entrypoint]: $*" >&2; exit 1; }

# MYSQL_* are the older spellings; MARIADB_* win when both are set.
for name in DATABASE USER PASSWORD ROOT_PASSWORD ALLOW_EMPTY_ROOT_PASSWORD RANDOM_ROOT_PASSWORD ROOT_HOST; do
	m="MARIADB_$name" o="MYSQL_$name"
	if [ -z "${!m:-}" ] && [ -n "${!o:-}" ]; then export "$m=${!o}"; fi
done

# A command that is not the server (bash, mysql ...) runs as given.
if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then exec "$@"; fi

datadir=/var/lib/mysql
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
[ "$(id -u)" = 0 ] && chown mysql:mysql "$datadir"

sql_string() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }
sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

if [ ! -d "$datadir/mysql" ]; then
	if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" ] \
	   && [ -z "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
		die "Database is uninitialized and password option is not specified
	You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
	fi
	if [ -n "${MARIADB_USER:-}" ] && [ -z "${MARIADB_PASSWORD:-}" ]; then
		die "MARIADB_PASSWORD must be set when MARIADB_USER is"
	fi
	if [ "${MARIADB_USER:-}" = root ]; then
		die "MARIADB_USER=root: use MARIADB_ROOT_PASSWORD for the root user"
	fi
	log "Initializing database files"
	mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal \
		--skip-name-resolve --rpm > /dev/null
	if [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
		MARIADB_ROOT_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
		log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
	fi
	root_host=${MARIADB_ROOT_HOST:-%}
	{
		echo "SET @@SESSION.SQL_LOG_BIN=0;"
		echo "DROP USER IF EXISTS ''@'localhost', ''@'$(hostname)', 'root'@'$(hostname)';"
		echo "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '%');"
		echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "${MARIADB_ROOT_PASSWORD:-}");"
		if [ "$root_host" != localhost ]; then
			echo "CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "${MARIADB_ROOT_PASSWORD:-}");"
			echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
		fi
		if [ -n "${MARIADB_DATABASE:-}" ]; then
			echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MARIADB_DATABASE");"
		fi
		if [ -n "${MARIADB_USER:-}" ]; then
			echo "CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
			if [ -n "${MARIADB_DATABASE:-}" ]; then
				echo "GRANT ALL ON $(sql_name "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';"
			fi
		fi
	} > /run/mysqld/init.sql
	chown mysql:mysql /run/mysqld/init.sql
	chmod 600 /run/mysqld/init.sql
	log "Database files initialized; users and database are created at the first start"
	# --init-file runs before the server accepts connections, once: later starts find the datadir.
	set -- "$@" --init-file=/run/mysqld/init.sql
fi

[ "$(id -u)" = 0 ] && set -- "$@" --user=mysql
log "Starting $*"
exec "$@"
