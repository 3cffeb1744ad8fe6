"""Django: add ``"flawless.client.django"`` to ``INSTALLED_APPS``; nothing else is needed.

Settings, all optional, in ``FLAWLESS = {...}``: the client's (``hostports``, ``key``,
``revision``, ``hostname``, ``mask``, ``before_send``, ``library_locals``, ...: given any,
the client is installed with them, the environment filling in the rest; given none, the
client the project installed, or the environment's, is used), and ``report_http_status`` (statuses also reported:
``[404]``, ``range(400, 500)``), ``headers`` (request headers a report may carry),
``user_id`` (True: send ``request.user.pk`` of an authenticated user), ``error_threshold``.

When the app is ready it listens to Django's ``got_request_exception`` signal (sent for
every exception Django turns into a 500; never for ``Http404``, ``PermissionDenied`` or a
bad request) and gives each request a fresh scope. Add
``"flawless.client.django.middleware.FlawlessMiddleware"`` to ``MIDDLEWARE`` for the
route, the view's name and the user in reports made with ``record_error`` inside views,
and for statuses of responses that no exception explains. An exception also logged by the
``django.request`` logger to a :class:`~flawless.client.hooks.FlawlessHandler` is reported
once. Django is imported only when the app is loaded.
"""
