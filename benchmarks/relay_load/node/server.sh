#!/bin/sh
# The y-websocket reference relay, in memory: ./server.sh PORT
cd "$(dirname "$0")" && PORT="$1" HOST=127.0.0.1 exec node node_modules/@y/websocket-server/src/server.js
