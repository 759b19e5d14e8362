/* help.c : the helper a pool thread registers (core/help.h). */
#include "core/help.h"

#include "internal.h"

static __thread weft_executor *help_ex;
static __thread bool (*help_fn)(weft_executor *ex);

void weft__help_register(weft_executor *ex, bool (*help)(weft_executor *ex))
{
    help_ex = ex;
    help_fn = help;
}

weft_executor *weft__current_executor(void)
{
    return help_ex;
}

bool weft__help_one(weft_executor *ex)
{
    return ex && ex == help_ex && help_fn && help_fn(ex);
}
