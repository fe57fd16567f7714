namespace Lowbit.Models.Tokenization;

/// <summary>
/// GPT-2's byte-to-character map used by byte-level BPE vocabularies (Llama 3, Qwen2, SmolLM): the printable
/// bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves, every other byte b maps to U+0100 + n, where n counts
/// the non-printable bytes below b (so the space 0x20 is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A). This keeps every
/// token a string of visible characters (openai/gpt-2 encoder.py, bytes_to_unicode).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> s_charToByte = BuildCharToByte();

    public static char ToChar(byte b) => s_byteToChar[b];

    /// <summary>How <paramref name="text"/> is spelled in a byte-level vocabulary: one alphabet character per
    /// UTF-8 byte.</summary>
    public static string ToTokenString(string text)
    {
        byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(utf8.Length, utf8, static (chars, bytes) =>
        {
            for (int i = 0; i < bytes.Length; i++)
                chars[i] = s_byteToChar[bytes[i]];
        });
    }

    /// <summary>The bytes a byte-level token stands for. A character outside the alphabet (possible only in added
    /// tokens) contributes its own UTF-8 bytes.</summary>
    public static byte[] ToBytes(string token)
    {
        var bytes = new List<byte>(token.Length);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (System.Text.Rune rune in token.EnumerateRunes())
        {
            if (rune.IsBmp && s_charToByte.TryGetValue((char)rune.Value, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            int n = rune.EncodeToUtf8(utf8);
            for (int i = 0; i < n; i++)
                bytes.Add(utf8[i]);
        }
        return [.. bytes];
    }

    private static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = IsPrintable(b) ? (char)b : (char)(256 + next++);
        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
            map[s_byteToChar[b]] = (byte)b;
        return map;
    }
}
