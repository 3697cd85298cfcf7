"""The local broker's runtime: a Java 17+ on PATH and the Kafka jars, fetched from Maven Central once.

The jars of `org.apache.kafka:kafka_2.13` and its runtime dependencies are copied by Maven into
`<cache_dir>/kafka-<version>/libs` (the recipe is infra/kafka/pom.xml).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.settings import Settings

POM: Final = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
JAVA_MAJOR_MIN: Final = 17
MVN_TIMEOUT_S: Final = 600


def check_java() -> str:
    """Path of a Java 17+ runtime, or a SandboxError saying what to install."""
    java = shutil.which("java")
    if java is None:
        raise SandboxError(
            "Java was not found on PATH; the local Kafka broker needs a Java 17+ runtime",
            "install one (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`), or point "
            "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS at an existing Kafka cluster",
        )
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)', completed.stderr + completed.stdout)
    if match is None or int(match.group(1)) < JAVA_MAJOR_MIN:
        found = match.group(1) if match else "unknown"
        raise SandboxError(
            f"Java {found} found at {java}; Kafka 4.x needs Java {JAVA_MAJOR_MIN} or newer",
            "install a newer JDK (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and put it first on PATH",
        )
    return java


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _maven_reason(output: str) -> str:
    """The first meaningful [ERROR] line of Maven's output."""
    for line in ANSI.sub("", output).splitlines():
        text = line.removeprefix("[ERROR]").strip()
        if line.startswith("[ERROR]") and text and not text.startswith(("For more", "[Help", "Re-run", "To see")):
            return text[:400]
    return "mvn failed without an [ERROR] line"


def jars_present(libs: Path) -> bool:
    """True when the cache holds the broker jar."""
    return any(libs.glob("kafka_2.13-*.jar"))


def fetch_jars(settings: Settings) -> Path:
    """Copies the pinned Kafka and its runtime dependencies from Maven Central into the cache, once."""
    libs = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
    if jars_present(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SandboxError(
            "Maven (`mvn`) was not found on PATH; it fetches the Kafka jars from Maven Central",
            f"install it (Debian/Ubuntu: `apt-get install maven`), or place the jars in {libs}",
        )
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    completed = subprocess.run(
        [mvn, "-B", "-q", "-f", str(POM), f"-Dkafka.version={settings.kafka_version}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False,
    )  # fmt: skip
    if completed.returncode != 0 or not jars_present(staging):
        raise SandboxError(
            f"could not fetch Kafka {settings.kafka_version} from Maven Central: "
            f"{_maven_reason(completed.stdout + completed.stderr)}",
            f"check that Maven Central is reachable (mvn settings, proxy), or place the jars in {libs}",
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs
