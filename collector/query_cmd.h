/* query_cmd.h - `trainscope query API_EP [JSON]`: one request to a local or
 * remote collector's query API, with CURVE keys when it uses them. Prefix trc_. */
#ifndef TRAINSCOPE_QUERY_CMD_H
#define TRAINSCOPE_QUERY_CMD_H

/* argv[0] is "query". Returns the exit status (0 ok, 1 error or no reply, 2 usage). */
int trc_query_main(int argc, char **argv);

#endif
