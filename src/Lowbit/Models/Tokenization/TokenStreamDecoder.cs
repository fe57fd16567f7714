using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// Turns generated token ids into text one token at a time. <see cref="Push"/> returns only text that is complete:
/// a character whose UTF-8 bytes are split over several tokens (SentencePiece byte-fallback pieces &lt;0xF0&gt;
/// &lt;0x9F&gt;..., or byte-level BPE tokens ending mid-character) appears when its last byte arrives. The
/// concatenated results equal <see cref="TextTokenizer.Decode"/> of the same ids whenever the ids end on a complete
/// character; otherwise <see cref="Flush"/> returns the rest.
/// </summary>
/// <remarks>
/// A fresh decoder treats the first token as the start of the text, so a SentencePiece dummy-prefix space is
/// dropped there. To continue after a prompt, push the prompt's ids first and ignore what they return.
/// </remarks>
public sealed class TokenStreamDecoder
{
    private readonly TokenDecodeTable _table;
    // A stateful UTF-8 decoder keeps the bytes of an unfinished character between calls; invalid bytes become
    // U+FFFD exactly as Encoding.UTF8.GetString does for the whole sequence.
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
    private readonly char[] _chars;
    private bool _atStart = true;

    public TokenStreamDecoder(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _table = tokenizer.DecodeTable;
        // Each byte yields at most one UTF-16 unit; up to 3 bytes may be held back from earlier tokens.
        _chars = new char[_table.MaxTokenBytes + 4];
    }

    /// <summary>The text token <paramref name="id"/> completes; empty for special tokens and for bytes that do not
    /// finish a character yet.</summary>
    public string Push(int id)
    {
        ReadOnlySpan<byte> bytes = _table.NextBytes(id, ref _atStart);
        if (bytes.IsEmpty)
            return "";
        int count = _utf8.GetChars(bytes, _chars, flush: false);
        return count == 0 ? "" : new string(_chars, 0, count);
    }

    /// <summary>Ends the stream: returns U+FFFD for bytes of a character that never completed (empty if none) and
    /// makes the decoder fresh again.</summary>
    public string Flush()
    {
        int count = _utf8.GetChars([], _chars, flush: true);
        Reset();
        return count == 0 ? "" : new string(_chars, 0, count);
    }

    /// <summary>Forgets pending bytes and starts a new text.</summary>
    public void Reset()
    {
        _utf8.Reset();
        _atStart = true;
    }
}
