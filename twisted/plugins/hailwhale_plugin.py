from twisted.application.service import ServiceMaker

hailwhale = ServiceMaker(
    "hailwhale", "hailwhale.tap", "Real-time counting of rolled-up metrics (UDP, HTTP, Redis).", "hailwhale"
)
