"""What the paramiko peers of tests/sftp.rs share: a session with public-key auth."""
import paramiko


def connect(port, user, keyfile):
    """An SFTP session on 127.0.0.1:PORT as USER with the private key in KEYFILE;
    returns (transport, sftp). Close the transport when done."""
    key = paramiko.PKey.from_path(keyfile)
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=user, pkey=key)
    return transport, paramiko.SFTPClient.from_transport(transport)
