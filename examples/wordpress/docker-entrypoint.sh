#!/bin/bash
# Like the official wordpress image's entrypoint: the database settings come from the
# environment. Debian's /usr/share/wordpress/wp-config.php loads /etc/wordpress/config-<host>.php
# and falls back to config-default.php, which is written here at every start (a recreated
# container with other variables gets their values).
set -eo pipefail

php_string() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }
salt() { head -c 48 /dev/urandom | base64 | tr -d '\n'; }

if [ "$1" = apache2-foreground ] || [ "${1#php}" != "$1" ]; then
	config=/etc/wordpress/config-default.php
	umask 027
	{
		echo "<?php"
		echo "// Written by docker-entrypoint.sh from the container's WORDPRESS_* variables."
		echo "define('DB_NAME', $(php_string "${WORDPRESS_DB_NAME:-wordpress}"));"
		echo "define('DB_USER', $(php_string "${WORDPRESS_DB_USER:-example username}"));"
		echo "define('DB_PASSWORD', $(php_string "${WORDPRESS_DB_PASSWORD:-example password}"));"
		echo "define('DB_HOST', $(php_string "${WORDPRESS_DB_HOST:-mysql}"));"
		echo "define('DB_CHARSET', $(php_string "${WORDPRESS_DB_CHARSET:-utf8mb4}"));"
		echo "define('DB_COLLATE', '');"
		echo "\$table_prefix = $(php_string "${WORDPRESS_TABLE_PREFIX:-wp_}");"
		for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
			var="WORDPRESS_$key"
			echo "define('$key', $(php_string "${!var:-$(salt)}"));"
		done
		echo "define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');"
		echo "define('WP_DEBUG', $([ -n "${WORDPRESS_DEBUG:-}" ] && echo true || echo false));"
		# Behind a proxy that terminates TLS, as the official image's config does.
		echo "if (isset(\$_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos(\$_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) { \$_SERVER['HTTPS'] = 'on'; }"
		echo "define('FS_METHOD', 'direct');"
		if [ -n "${WORDPRESS_CONFIG_EXTRA:-}" ]; then echo "$WORDPRESS_CONFIG_EXTRA"; fi
	} > "$config.tmp"
	chgrp www-data "$config.tmp"
	mv "$config.tmp" "$config"
	umask 022
fi
exec "$@"
