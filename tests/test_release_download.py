"""Releases given by URL: downloaded once into torch's hub cache (here from a server on
127.0.0.1), checked against their SHA-256, converted on load; a clear message without network."""
import functools
import hashlib
import http.server
import threading

import pytest
import torch

from plugins.backbones.van import VAN
from plugins.utils.checkpoint import CheckpointError, cached_download, load_pretrained
from plugins.utils.converters import get_converter
from tools.convert_checkpoint import main as convert_main

from .backbones.test_van import official_state_dict


@pytest.fixture
def release_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``; torch's hub cache in tmp_path."""
    www = tmp_path / 'www'
    www.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_release_url_is_downloaded_once_and_converted_on_load(release_server, tmp_path):
    www, base = release_server
    source = VAN('b0').eval()
    torch.save(dict(state_dict=official_state_dict(source)), www / 'van_tiny_754.pth.tar')
    url = f'{base}/van_tiny_754.pth.tar'
    model = VAN('b0', init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'van_tiny_754.pth.tar'
    assert cached.is_file()
    (www / 'van_tiny_754.pth.tar').unlink()  # the second load reads the cache
    assert load_pretrained(VAN('b0'), url, convert=get_converter('van'))['missing'] == []
    convert_main(['van', url, str(tmp_path / 'converted.pth')])
    assert (tmp_path / 'converted.pth').is_file()


def test_a_download_with_another_checksum_is_deleted_and_refused(release_server):
    www, base = release_server
    torch.save({'w': torch.zeros(3)}, www / 'release.pth')
    good = sha256_of(www / 'release.pth')
    assert cached_download(f'{base}/release.pth', sha256=good).endswith('release.pth')
    torch.save({'w': torch.ones(3)}, www / 'other.pth')
    with pytest.raises(CheckpointError, match='not the release\'s .* the file was deleted'):
        cached_download(f'{base}/other.pth', sha256=good)
    with pytest.raises(CheckpointError, match='could not download'):  # nothing half-written left
        cached_download(f'{base}/missing.pth')


def test_without_network_the_message_names_the_url_and_where_to_put_the_file(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = 'http://127.0.0.1:9/van_tiny_754.pth.tar'  # the discard port: nothing listens
    with pytest.raises(CheckpointError) as err:
        cached_download(url)
    msg = str(err.value)
    assert url in msg and str(tmp_path / 'hub' / 'checkpoints' / 'van_tiny_754.pth.tar') in msg
    assert 'place it at' in msg
