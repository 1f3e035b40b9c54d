"""Releases given by URL: downloaded once into torch's hub cache (here from a server on
127.0.0.1), checked against their SHA-256, converted on load; a clear message without network."""
import functools
import hashlib
import http.server
import threading

import pytest
import torch

from plugins.backbones.van import VAN
from plugins.utils.checkpoint import (CheckpointError, cache_file_name, cached_download, is_page,
                                      known_release, load_pretrained)
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


def serve(www, route, content):
    """Put ``content`` (a tensor dict, or bytes) where ``route`` of the server finds it; a route
    ending in '/' (a link such as Tsinghua Cloud's ``/f/<id>/?dl=1``) serves its index.html."""
    target = www / route.lstrip('/').split('?')[0]
    if route.split('?')[0].endswith('/'):
        target = target / 'index.html'
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        torch.save(content, target)


@pytest.mark.parametrize('routes', [('/f/aada2242/?dl=1', '/f/dd3eb736/?dl=1'),
                                    ('/v1.0/shares/s!AkB1/root/content',
                                     '/v1.0/shares/s!AkB2/root/content')])
def test_links_that_name_no_file_are_cached_apart(release_server, routes):
    """Tsinghua Cloud's and OneDrive's links end in no file name: both were cached as one file
    ('checkpoint.pth' / 'content'), so the second release loaded the first one's weights."""
    www, base = release_server
    for i, route in enumerate(routes):
        serve(www, route, {'w': torch.full((2, ), float(i))})
    paths = [cached_download(base + route) for route in routes]
    assert paths[0] != paths[1]
    for i, path in enumerate(paths):
        assert torch.load(path)['w'][0] == i


def test_every_recorded_release_is_cached_under_a_name_of_its_own():
    """One cache file per release (its mirrors share it), named like a checkpoint."""
    from plugins.backbones.reference import release_index
    from plugins.tasks.sr.reference import release_index as sr_release_index
    owners = {}
    for url, release in {**release_index(), **sr_release_index()}.items():
        if is_page(url):
            continue
        name = cache_file_name(url, release)
        assert name.endswith(('.pth', '.pth.tar')), (url, name)
        owners.setdefault(name, set()).add(release.get('file') or name)
    assert all(len(files) == 1 for files in owners.values())
    assert cache_file_name(
        'https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvChHEOoGkgwgQzEDlM/root/content',
        known_release('https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvChHEOoGkgwgQzEDlM/'
                      'root/content')) == 'biformer_tiny_in1k.pth'


def test_a_web_page_link_is_refused_with_how_to_fetch_it_by_hand(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = 'https://drive.google.com/drive/folders/1uaT5OarQd9iPrnFufHocHpM3zhyTcetB?usp=sharing'
    with pytest.raises(CheckpointError, match='web page, not a file.*local path'):
        cached_download(url)
    assert not (tmp_path / 'hub').exists()


def test_a_download_that_is_not_a_checkpoint_is_deleted_and_refused(release_server, tmp_path):
    www, base = release_server
    serve(www, '/sign-in.pth', b'<!DOCTYPE html><html>sign in</html>')
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        cached_download(f'{base}/sign-in.pth')
    assert not (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'sign-in.pth').exists()


def test_the_hash_prefix_in_a_file_name_is_checked(release_server):
    """timm's (HaloNet's) release files carry their SHA-256's first hex digits in the name."""
    www, base = release_server
    serve(www, '/weights.pth', {'w': torch.zeros(3)})
    content, digest = (www / 'weights.pth').read_bytes(), sha256_of(www / 'weights.pth')
    serve(www, f'/halo-{digest[:8]}.pth', content)
    assert cached_download(f'{base}/halo-{digest[:8]}.pth')
    wrong = 'deadbeef' if not digest.startswith('deadbeef') else 'feedface'
    serve(www, f'/halo-{wrong}.pth', content)
    with pytest.raises(CheckpointError, match='prefix in its name'):
        cached_download(f'{base}/halo-{wrong}.pth')
