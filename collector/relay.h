/* relay.h - `trainscope relay`: one per node, fans the node's ranks into one
 * upstream connection to the collector.
 *
 * The relay is ZeroMQ's own proxy (zmq_proxy) between a ROUTER that the
 * local publishers connect to and a DEALER connected upstream. The ROUTER
 * prepends each publisher's routing id to its messages; the collector keeps
 * those ids as the reply route of the stream (PROTOCOL.md "Relays") and sends
 * ACK and ERROR replies back with them, and the ROUTER strips the id to
 * deliver the reply to the publisher that sent the message. The relay keeps
 * no state that matters: sequence numbers, resends and deduplication stay
 * between the publishers and the collector, so a relay that dies loses only
 * messages in flight, which the publishers send again.
 *
 * Prefix trl_.
 */
#ifndef TRAINSCOPE_RELAY_H
#define TRAINSCOPE_RELAY_H

/* `trainscope relay ...`: argv[0] is "relay". Returns the exit status:
 * 0 after SIGINT/SIGTERM, 1 when a socket, endpoint or key fails, 2 for a
 * bad command line. */
int trl_relay_main(int argc, char **argv);

#endif
