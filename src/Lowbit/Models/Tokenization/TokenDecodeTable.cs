namespace Lowbit.Models.Tokenization;

/// <summary>How a token id turns back into text.</summary>
internal enum TokenKind : byte
{
    /// <summary>A text piece: its bytes are UTF-8 text (a SentencePiece piece with "▁" as " ", or a byte-level
    /// BPE token mapped back through the GPT-2 byte alphabet). Pieces may end inside a UTF-8 character.</summary>
    Text,
    /// <summary>A SentencePiece byte-fallback piece &lt;0xNN&gt;: one raw byte.</summary>
    Byte,
    /// <summary>Control and special tokens (&lt;s&gt;, &lt;/s&gt;, &lt;unk&gt;, &lt;|eot_id|&gt;): no text.</summary>
    Special,
}

/// <summary>
/// The bytes each token id decodes to, shared by <see cref="TextTokenizer.Decode"/> and
/// <see cref="TokenStreamDecoder"/> so the two cannot disagree about a token. Built once at load.
/// </summary>
internal sealed class TokenDecodeTable
{
    private readonly byte[][] _bytes;
    private readonly TokenKind[] _kinds;

    public TokenDecodeTable(byte[][] bytes, TokenKind[] kinds, bool stripDummyPrefix)
    {
        if (bytes.Length != kinds.Length)
            throw new ArgumentException($"{bytes.Length} byte entries but {kinds.Length} kinds");
        _bytes = bytes;
        _kinds = kinds;
        StripDummyPrefix = stripDummyPrefix;
        foreach (byte[] b in bytes)
            MaxTokenBytes = Math.Max(MaxTokenBytes, b.Length);
    }

    public int Count => _bytes.Length;

    /// <summary>The longest byte string of one token, to size decode buffers.</summary>
    public int MaxTokenBytes { get; }

    /// <summary>SentencePiece models with add_dummy_prefix put a "▁" before the first word when encoding; decoding
    /// drops the leading space of the first text piece again, as sentencepiece's own Decode does.</summary>
    public bool StripDummyPrefix { get; }

    public TokenKind Kind(int id) => _kinds[CheckId(id)];

    /// <summary>
    /// The bytes token <paramref name="id"/> adds to the output. <paramref name="atStart"/> is true until the
    /// output holds text or a dummy-prefix space was dropped; it is updated here. This mirrors
    /// sentencepiece's Decode (src/sentencepiece_processor.cc, is_bos_ws): only a text piece that starts with
    /// "▁" loses it, and only while nothing has been output yet.
    /// </summary>
    public ReadOnlySpan<byte> NextBytes(int id, ref bool atStart)
    {
        ReadOnlySpan<byte> bytes = _bytes[CheckId(id)];
        if (_kinds[id] == TokenKind.Special)
            return default;
        if (atStart && StripDummyPrefix && _kinds[id] == TokenKind.Text && bytes.Length > 0 && bytes[0] == (byte)' ')
        {
            atStart = false;
            return bytes[1..];
        }
        if (bytes.Length > 0)
            atStart = false;
        return bytes;
    }

    /// <summary>The byte a SentencePiece byte piece "&lt;0xNN&gt;" stands for.</summary>
    public static byte ParseBytePiece(string piece, int id, string path) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
        && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b)
            ? b
            : throw new InvalidDataException($"{path}: byte piece {id} is \"{piece}\", expected <0xNN>");

    private int CheckId(int id) => (uint)id < (uint)_bytes.Length
        ? id
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the tokenizer's vocabulary of {_bytes.Length}");
}
