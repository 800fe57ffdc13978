#include "daemon/isolator/isolator.h"

#include <string.h>

#include "basic/macros.h"

static const IsolatorOps *const isolators[] = {
        &isolator_ns,
};

const IsolatorOps *isolator_by_name(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(isolators); i++)
                if (strcmp(isolators[i]->name, name) == 0)
                        return isolators[i];
        return NULL;
}
