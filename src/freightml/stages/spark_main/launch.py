"""The file spark-submit runs in FreightML's SparkApplications (their mainApplicationFile).

spark-submit puts the main file's own directory first on ``sys.path``; this one holds only
this file, so no module of the package shadows a standard library module (``select``,
say). The work is :func:`freightml.stages.spark_job.main`.
"""

import sys

from freightml.stages.spark_job import main

if __name__ == "__main__":
    sys.exit(main())
