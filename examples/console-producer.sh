#!/bin/sh
# Publish a JSON Lines file of events (structured-mode CloudEvents, one a line) with Kafka's own console
# producer: each event to the topic of its family, keyed by its customer id (rep:<id> for rep.* events).
#
#   examples/console-producer.sh [FILE]        FILE: default examples/events.jsonl
#
# BOOTSTRAP (default 127.0.0.1:9092) and PREFIX (default retention: retention.lifecycle, ...) choose where.
# With a Kafka distribution, set KAFKA_HOME and its bin/kafka-console-producer.sh is used; without one,
# the Kafka jars `retention-monitor stack up` fetched (~/.cache/retention-monitor) and java.
set -eu

FILE=${1:-$(dirname "$0")/events.jsonl}
BOOTSTRAP=${BOOTSTRAP:-127.0.0.1:9092}
PREFIX=${PREFIX:-retention}
TAB=$(printf '\t')

producer() {
    if [ -n "${KAFKA_HOME:-}" ]; then
        "$KAFKA_HOME/bin/kafka-console-producer.sh" "$@"
    else
        libs=$(ls -d "$HOME"/.cache/retention-monitor/kafka-*/libs 2>/dev/null | tail -n 1)
        [ -n "$libs" ] || { echo "no Kafka found: set KAFKA_HOME or run retention-monitor stack up" >&2; exit 2; }
        log4j=$(mktemp)
        printf 'log4j.rootLogger=WARN, err\nlog4j.appender.err=org.apache.log4j.ConsoleAppender\n%s\n%s\n' \
            'log4j.appender.err.Target=System.err' 'log4j.appender.err.layout=org.apache.log4j.SimpleLayout' >"$log4j"
        java -Dlog4j.configuration="file:$log4j" -cp "$libs/*" kafka.tools.ConsoleProducer "$@"
        rm -f "$log4j"
    fi
}

# family topic <- the types it carries (docs/contract/events.md, "Topics")
for pair in "lifecycle:customer|order" "support:ticket" "feedback:survey|feedback" "team:rep"; do
    family=${pair%%:*}
    types=${pair#*:}
    lines=$(grep -E "\"type\" *: *\"($types)\." "$FILE" || true)
    [ -n "$lines" ] || continue
    # key TAB event: the key is the customer id, or rep:<rep id>
    printf '%s\n' "$lines" \
        | sed -E -e "s/^(.*\"customer_id\" *: *\"([^\"]*)\".*)$/\\2$TAB\\1/;t" \
                 -e "s/^(.*\"rep_id\" *: *\"([^\"]*)\".*)$/rep:\\2$TAB\\1/" \
        | producer --bootstrap-server "$BOOTSTRAP" --topic "$PREFIX.$family" --producer-property acks=all \
                   --property parse.key=true --property "key.separator=$TAB"
    echo "$PREFIX.$family: $(printf '%s\n' "$lines" | wc -l) events"
done
