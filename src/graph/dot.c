/* dot.c : a graph in Graphviz DOT, for `dot -Tsvg`.
 *
 * One statement per node, `nID [label="task\nstate\nduration", ...]`, then
 * one per edge, `nP -> nC`, with the argument position as the edge label
 * when the consumer has several arguments (so fan-in reads in order).
 * Fill colours follow the state, as in dask's graph pictures. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph_internal.h"

static const char *state_color(weft_node_state s)
{
    switch (s) {
    case WEFT_NODE_DONE:
        return "#b7e1cd"; /* green */
    case WEFT_NODE_RELEASED:
        return "#d9ead3"; /* pale green: done, output freed */
    case WEFT_NODE_FAILED:
        return "#f4c7c3"; /* red */
    case WEFT_NODE_CANCELLED:
        return "#e0e0e0"; /* grey */
    case WEFT_NODE_RUNNING:
    case WEFT_NODE_WAITING:
        return "#fce8b2"; /* yellow */
    default:
        return "#ffffff";
    }
}

static void dot_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c >= 0x20)
            fputc(c, f);
    }
}

static void fmt_duration(char *b, size_t cap, double s)
{
    if (s < 1e-3)
        snprintf(b, cap, "%.1f us", s * 1e6);
    else if (s < 1)
        snprintf(b, cap, "%.2f ms", s * 1e3);
    else
        snprintf(b, cap, "%.3f s", s);
}

int weft_graph_write_dot(const weft_graph *g, const char *path)
{
    if (!g || !path || !*path) return weft__err(WEFT_EINVAL, "weft_graph_write_dot: NULL argument");
    if (g->run) return weft__err(WEFT_EBUSY, "weft_graph_write_dot: a compute is running");
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (!f) {
        int e = errno;
        return weft__err(-e, "weft_graph_write_dot: cannot open '%s': %s", path, strerror(e));
    }
    fprintf(f, "digraph weft {\n"
               "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n"
               "  edge [fontname=\"sans-serif\", fontsize=9];\n");
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const gnode *n = node_at(g, i);
        char buf[48];
        weft_node_state s = weft_graph_state(g, i);
        fprintf(f, "  n%u [label=\"", i);
        dot_str(f, weft__graph_task_name(n->fn, buf, sizeof buf));
        fprintf(f, "\\n%s", weft_node_state_name(s));
        double d = weft_graph_duration(g, i);
        if (d >= 0) {
            char t[32];
            fmt_duration(t, sizeof t, d);
            fprintf(f, "\\n%s", t);
        }
        fprintf(f, "\", fillcolor=\"%s\"];\n", state_color(s));
    }
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const gnode *n = node_at(g, i);
        const garg *a = &g->args[n->arg0];
        for (uint32_t k = 0; k < n->nargs; k++) {
            if (a[k].node == NONE32) continue;
            if (n->nargs > 1)
                fprintf(f, "  n%u -> n%u [label=\"%u\"];\n", a[k].node, i, k);
            else
                fprintf(f, "  n%u -> n%u;\n", a[k].node, i);
        }
    }
    fprintf(f, "}\n");
    int bad = ferror(f);
    int rc = to_stdout ? fflush(f) : fclose(f);
    if (rc != 0 || bad) {
        int e = errno ? errno : EIO;
        return weft__err(-e, "weft_graph_write_dot: error writing '%s': %s", path, strerror(e));
    }
    return 0;
}
