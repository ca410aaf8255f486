#!/bin/bash
# Lab 2, WordPress in three containers, with dockyard in place of docker: MariaDB, WordPress
# (Apache + PHP) and Nginx as the reverse proxy published on port 80, configured by a
# bind-mounted wp.conf. Three ways to wire them, as the lesson and its readers did:
#
#   examples/wordpress/lab.sh ip        containers found by address (`inspect | grep IPAddress`)
#   examples/wordpress/lab.sh network   a user network: db1, wp1, ng1 find each other by name
#   examples/wordpress/lab.sh link      --link db1:db1 and --link wp1:wp1 on the default bridge
#   examples/wordpress/lab.sh down      remove the lab's containers, network and volume
#
# Needs `make images`. HTTP_PORT (default 80) is the published port; LAB_DIR (default
# /var/tmp/dockyard-lab/wordpress) holds wp.conf.
set -euo pipefail
. "$(dirname "$0")/../lib/lab.sh"
PORT=${HTTP_PORT:-80}
LAB_DIR=${LAB_DIR:-/var/tmp/dockyard-lab/wordpress}
NETWORK=wp-net
VOLUME=wp-db
DB_ENV=(--env MARIADB_DATABASE=db --env MARIADB_USER=wp --env MARIADB_PASSWORD=123 --env MARIADB_ROOT_PASSWORD=123)

down() {
	local name
	for name in ng wp db ng1 wp1 db1; do quiet rm -f "$name" >/dev/null 2>&1 || true; done
	quiet network rm "$NETWORK" >/dev/null 2>&1 || true
	quiet volume rm "$VOLUME" >/dev/null 2>&1 || true
}

# write_wp_conf UPSTREAM: the lesson's wp.conf, proxying to UPSTREAM (an address or a name).
write_wp_conf() {
	# nginx's $host drops the port: on another port than 80 WordPress would then send the
	# browser to port 80, so $http_host (host and port as the browser sent them) is used there.
	local host_var='$host'
	[ "$PORT" = 80 ] || host_var='$http_host'
	mkdir -p "$LAB_DIR"
	cat > "$LAB_DIR/wp.conf" <<CONF
server {
    listen 80;
    server_name localhost;

    location / {
        proxy_pass http://$1;
        proxy_http_version 1.1;
        proxy_set_header Host $host_var;
        proxy_set_header X-Real-IP \$remote_addr;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
    }
}
CONF
	bold "\$ cat wp.conf"
	cat "$LAB_DIR/wp.conf"
}

# ip_of CONTAINER: the lesson's `dockyard inspect <id> | grep IPAddress`.
ip_of() {
	bold "\$ dockyard inspect $1 | grep IPAddress" >&2
	local lines
	lines=$(quiet inspect "$1" | grep IPAddress)
	echo "$lines" >&2
	grep -o '"IPAddress": "[0-9.]*"' <<<"$lines" | head -1 | cut -d'"' -f4
}

check_db() {  # NAME: the lesson's `dockyard exec -it NAME mysql -u wp -p`, without the prompt
	wait_for "MariaDB in $1" 60 "$DOCKYARD" exec "$1" mysql -u wp -p123 db -e 'SELECT 1'
	echo "(the lesson types: dockyard exec -it $1 mysql -u wp -p   and the password 123)"
	dockyard exec "$1" mysql -u wp -p123 db -e 'SELECT USER(), DATABASE(), VERSION()' \
		| expect "wp@localhost" "mysql -u wp logs in to database db"
}

check_site() {
	local url=http://127.0.0.1:$PORT/
	wait_for "the site on $url" 60 curl -sf -o /dev/null "$url"
	bold "\$ curl -sL $url | grep '<title>'"
	local page status
	page=$(curl -sSL --max-time 30 -w '\n%{http_code}' "$url") || fail "curl $url"
	status=${page##*$'\n'}
	# WordPress answers 500 with a "WordPress › Error" page when it cannot reach its database.
	[ "$status" = 200 ] || fail "GET $url answered $status: ${page:0:600}"
	grep -o '<title>[^<]*' <<<"$page" | expect "WordPress" "Nginx on port $PORT proxies to WordPress"
}

ip_variant() {
	title "MariaDB"
	local db wp db_ip wp_ip
	bold "\$ dockyard run -d --name db ${DB_ENV[*]} -v $VOLUME:/var/lib/mysql mariadb:10"
	db=$(quiet run -d --name db "${DB_ENV[@]}" -v "$VOLUME:/var/lib/mysql" mariadb:10) || fail "run mariadb"
	echo "$db"
	check_db db
	db_ip=$(ip_of db)
	[ -n "$db_ip" ] || fail "no IPAddress for db"

	title "WordPress, told the database's address ($db_ip)"
	bold "\$ dockyard run -d --name wp --env WORDPRESS_DB_HOST=$db_ip --env WORDPRESS_DB_USER=wp --env WORDPRESS_DB_PASSWORD=123 --env WORDPRESS_DB_NAME=db wordpress:5"
	wp=$(quiet run -d --name wp --env "WORDPRESS_DB_HOST=$db_ip" --env WORDPRESS_DB_USER=wp \
		--env WORDPRESS_DB_PASSWORD=123 --env WORDPRESS_DB_NAME=db wordpress:5) || fail "run wordpress"
	echo "$wp"
	wp_ip=$(ip_of wp)
	[ -n "$wp_ip" ] || fail "no IPAddress for wp"

	title "Nginx in front, proxying to WordPress at $wp_ip"
	write_wp_conf "$wp_ip"
	cd "$LAB_DIR"
	dockyard run -d --name ng -p "$PORT:80" -v "$(pwd)/wp.conf:/etc/nginx/conf.d/default.conf" nginx:alpine
	check_site
}

network_variant() {
	title "A user network; the containers find each other by name"
	dockyard network create "$NETWORK"
	dockyard run -d --name db1 --network "$NETWORK" "${DB_ENV[@]}" -v "$VOLUME:/var/lib/mysql" mariadb:10
	check_db db1
	dockyard run -d --name wp1 --network "$NETWORK" --env WORDPRESS_DB_HOST=db1 --env WORDPRESS_DB_USER=wp \
		--env WORDPRESS_DB_PASSWORD=123 --env WORDPRESS_DB_NAME=db wordpress:5
	write_wp_conf wp1
	cd "$LAB_DIR"
	dockyard run -d --name ng1 --network "$NETWORK" -p "$PORT:80" \
		-v "$(pwd)/wp.conf:/etc/nginx/conf.d/default.conf" nginx:alpine
	check_site
}

link_variant() {
	title "The default bridge with --link"
	dockyard run -d --name db1 "${DB_ENV[@]}" -v "$VOLUME:/var/lib/mysql" mariadb:10
	check_db db1
	dockyard run -d --name wp1 --link db1:db1 --env WORDPRESS_DB_HOST=db1 --env WORDPRESS_DB_USER=wp \
		--env WORDPRESS_DB_PASSWORD=123 --env WORDPRESS_DB_NAME=db wordpress:5
	write_wp_conf wp1
	cd "$LAB_DIR"
	dockyard run -d --name ng1 --link wp1:wp1 -p "$PORT:80" \
		-v "$(pwd)/wp.conf:/etc/nginx/conf.d/default.conf" nginx:alpine
	check_site
}

variant=${1:-ip}
case "$variant" in
	ip | network | link)
		need_image mariadb:10
		need_image wordpress:5
		need_image nginx:alpine
		down
		"${variant}_variant"
		title "Done"
		dockyard ps
		echo "WordPress is at http://127.0.0.1:$PORT/ (the installer on the first visit)."
		echo "Remove it all with: $0 down"
		;;
	down) down; echo "wordpress lab removed" ;;
	*) echo "usage: $0 [ip|network|link|down]" >&2; exit 2 ;;
esac
