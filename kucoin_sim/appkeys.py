"""The aiohttp application key under which handlers find their Simulator."""
from aiohttp import web

SIM = web.AppKey("sim", object)
