/* forgectl: the command-line client of forged. Everything but this lives in the other
 * files of src/cli/, so the unit tests can link it. */
#include "cli/forgectl.h"

int main(int argc, char **argv) {
        return forgectl_main(argc, argv);
}
