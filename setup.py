"""Packaging for volmgr; metadata lives here so `pip install .` needs nothing else."""

from setuptools import find_packages, setup

setup(
    name="volmgr",
    version="0.1.0",
    description="Asynchronous, message-driven block-volume manager for clouds",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    include_package_data=True,
    package_data={
        "volmgr.db": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
    },
    install_requires=[
        "oslo.config>=9.4",
        "oslo.messaging>=14.7",
        "oslo.context>=5.5",
        "kombu>=5.3",
        "SQLAlchemy>=2.0.25",
        "alembic>=1.13",
        "tenacity>=8.2",
        "psycopg[binary]>=3.1",
        "PyMySQL>=1.1",
        "WebOb>=1.8",
        "defusedxml>=0.7",
        "gunicorn>=21.2",
        "waitress>=3.0",
        "tqdm>=4.66",
        "prometheus_client>=0.20",
        "orjson>=3.9",
    ],
    extras_require={
        "keystone": ["keystonemiddleware>=10.0"],
        "lio": ["rtslib-fb>=2.1"],
    },
    entry_points={
        "console_scripts": [
            "volmgr-api = volmgr.cmd.api:main",
            "volmgr-volume = volmgr.cmd.volume:main",
            "volmgr-manage = volmgr.cmd.manage:main",
            "volmgr-all = volmgr.cmd.all:main",
            "volmgr-bench = volmgr.bench.cli:main",
        ],
        "oslo.config.opts": [
            "volmgr = volmgr.opts:list_opts",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Filesystems",
    ],
)
