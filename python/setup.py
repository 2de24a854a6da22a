"""Copies the built C library (libpocketlm.so, `scripts/build.sh` then `ninja -C build pocketlm_shared`) into the
package, so `pip install ./python` gives a self-contained install. POCKETLM_BUILD_DIR picks another build."""
import os
import shutil

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
build = os.environ.get("POCKETLM_BUILD_DIR", os.path.join(here, "..", "build"))
lib = os.path.join(build, "lib", "libpocketlm.so")
if os.path.exists(lib):
    shutil.copy2(lib, os.path.join(here, "pocketlm", "libpocketlm.so"))
elif not os.path.exists(os.path.join(here, "pocketlm", "libpocketlm.so")):
    raise SystemExit(f"{lib} is missing: build it first (scripts/build.sh; ninja -C build pocketlm_shared)")
setup()
