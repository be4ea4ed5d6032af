def read_melange(config, **kw):
    raise NotImplementedError
