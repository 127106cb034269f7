import requests


def handler(event, context):
    return {"requests": requests.__version__}
