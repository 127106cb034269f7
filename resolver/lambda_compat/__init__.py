"""lambda-compat: will these Python dependencies import on AWS Lambda?"""

__version__ = "0.1.0"
